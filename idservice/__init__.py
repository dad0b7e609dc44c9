"""idservice: issues 12-digit citizen PINs, officer login and a tamper-evident audit log."""
