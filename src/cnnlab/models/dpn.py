"""(family module, to be written)"""
