"""The personal identification number (PIN): format, province codes, number allocation.

Pure logic, standard library only (an architecture test enforces it):

- :mod:`idservice.pin.format`: the 12-digit layout ``PPP G YY RRRRRR`` (Circular
  07/2016/TT-BCA, Art. 7 and Annex I; CONTRACT.md section 2).
- :mod:`idservice.pin.provinces`: the province codes as dated data (legacy 63 provinces;
  the 34 merged provinces of Decision 19/2025/QD-TTg from 2025-07-01).
- :mod:`idservice.pin.allocator`: uniform CSPRNG choice of the 6 random digits among the
  numbers still free in a bucket, storage behind a protocol.
"""
