//! The appliance spec (`kind = "appliance"`).
