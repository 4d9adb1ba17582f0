"""Block G: connector status (StatusNotification), ChangeAvailability, UnlockConnector."""
