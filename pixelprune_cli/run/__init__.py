"""What a run is (`job`), and the engines that decide where the per-image function runs."""
