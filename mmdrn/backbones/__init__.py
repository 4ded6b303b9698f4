"""mmdrn backbones."""
