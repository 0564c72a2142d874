"""User data loading, prompt formatting, datasets and collators."""
