"""mmdrn evaluation."""
