"""Moving from ftpsync or tunasync: their configs read and mapped to Mirrorkeeper's. Pure but
for the readers at the edge (``read_*``); every source setting is mapped or said not to be."""
