"""Notifications out (contract 9, OSIA Notification): the outbox, subscriptions, delivery."""
