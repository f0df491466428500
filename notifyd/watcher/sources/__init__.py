"""Where the watcher learns of jobs: one EventSource each (base.py), the spool files and the legacy file."""
