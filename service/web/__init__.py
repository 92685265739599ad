"""The dashboard's page, script and style sheet, served as they are (no build step)."""
