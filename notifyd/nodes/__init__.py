"""The node view: snapshots of each node (the only psutil user) and their reader."""
