"""Plain peers: the same load served without event sourcing, for comparison."""
