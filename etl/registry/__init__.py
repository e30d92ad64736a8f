"""The Goyang device fleet: seeded generation, CSV files and a validating loader."""
