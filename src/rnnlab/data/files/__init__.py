"""Single files on disk: verified downloads and the IDX format."""
