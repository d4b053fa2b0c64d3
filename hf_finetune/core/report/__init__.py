"""What a run leaves and says: atomic files, curves and tables, the console, and the Hub push
with its model-card frame."""
