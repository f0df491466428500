"""notifyd: job notifications and a process view for labs that share one NFS home.

Kept empty on purpose: `pingch` imports this package on every job, so nothing
here may import anything heavy.
"""

__version__ = "0.1.0"
