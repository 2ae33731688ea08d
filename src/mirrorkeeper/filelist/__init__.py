"""Incremental sync from an upstream's published file list (Fedora's ``fullfiletimelist-*``).

``format`` reads the list (pure), ``compare`` decides what to transfer and what to delete from
the new list, the previous one and the local tree (pure); :mod:`mirrorkeeper.sync.filelist`
fetches, walks and runs the stages (I/O).
"""
