"""The meter fleet simulator: physics (pure), device identities, transports, attacks, driver."""
