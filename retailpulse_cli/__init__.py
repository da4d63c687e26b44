"""retailpulse: check store visits, download and measure shelf photos, keep results per job."""

__version__ = "1.0.0"
