"""Group `item_sets`: the chain of the 341 for item sets registered at run time (`hlv items add`)."""
