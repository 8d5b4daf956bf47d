//! Delivery status notifications (RFC 3464) for messages the relay gives up on.
