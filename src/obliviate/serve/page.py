"""The read-only ledger page at ``/``: plain HTML (no script, no build step)."""

from __future__ import annotations

from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .done { color: #176b2c; } .failed { color: #a31515; }
.queued, .running { color: #8a5a00; } code { font-size: 0.9em; }
"""


def _sources(record: dict) -> str:
    pairs = zip(record["sources"], record["source_names"])
    return ", ".join(escape(f"{s} ({n})" if n else str(s)) for s, n in pairs)


def render_page(records: list[dict], info: dict) -> str:
    rows = []
    for record in reversed(records):   # newest first
        link = f"/v1/deletions/{escape(record['id'])}/certificate?format=md"
        rows.append(
            "<tr>"
            f"<td><a href=\"/v1/deletions/{escape(record['id'])}\">{escape(record['id'])}</a></td>"
            f"<td>{escape(record['requested_at'])}</td><td>{escape(record['requester'])}</td>"
            f"<td>{_sources(record)}</td><td>{escape(record['method'])}</td>"
            f"<td class=\"{escape(record['status'])}\">{escape(record['status'])}</td>"
            f"<td><a href=\"{link}\">certificate</a></td>"
            "</tr>")
    body = "\n".join(rows) if rows else "<tr><td colspan=\"7\">no deletion requests yet</td></tr>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>obliviate ledger: {escape(info['model'])}</title>
<style>{STYLE}</style></head>
<body>
<h1>Deletion ledger</h1>
<p>Model <code>{escape(info['model'])}</code> ({escape(info['kind'])}), served hash
<code>{escape(str(info['model_hash']))}</code>, state version {int(info['state_version'])};
ledger <code>{escape(info['ledger'])}</code>. {len(records)} request(s). This page is read-only.</p>
<table>
<thead><tr><th>id</th><th>requested</th><th>by</th><th>sources</th><th>method</th><th>status</th>
<th>certificate</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body></html>
"""
