"""The bottom layer: what every other layer may use and nothing here imports from them.

Errors and the error edge's types (`errors`), atomic writes (`atomic`), cache paths (`paths`), plain values
(`values`), declarative tables (`tables`), text files and path checks (`textfile`, `pathcheck`), the device
and dtype from the spec (`device`), progress events (`observer`), the typed cell record (`record`), the
cost meter (`costmeter`) and hash-pinned downloads (`download`). No torch model, no data, no method.
"""
