"""Webhooks beside other clients (issue 10): fixed-rate signed callbacks, alone and with company."""
