"""Importing another system's service-request export as the case events it implies (issue 14).

Pure: a profile (:mod:`importing.profile`) says how to read an export's rows, :mod:`importing.rows` turns a
row into the commands it implies and names its anomalies, and :mod:`importing.run` carries them out through
the service in batches. Reading the file and the command line are the adapters' (``adapters/cli/imports.py``).
"""
