"""Block H: ReserveNow, CancelReservation, expiry and use of reservations."""
