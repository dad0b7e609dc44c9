"""OSIA (ITU-T X.1281) UIN Generation and Data Access interfaces (contract 10)."""
