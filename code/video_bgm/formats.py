"""Which files are videos, and which containers we write: one definition, light to import
(a command's ``--help`` lists them before PyAV loads)."""

# What counts as a video file, everywhere (generation's folder mode, training, evaluation, preparation).
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts",
                              ".wmv", ".flv", ".3gp"})
# Output container per extension, and the audio codec it gets (WebM cannot hold AAC).
OUTPUT_FORMATS = {".mp4": ("mp4", "aac"), ".mov": ("mov", "aac"),
                  ".mkv": ("matroska", "aac"), ".webm": ("webm", "libopus")}
