"""Step 2, mixtures: the mixture and schedule values and the RegMix sampler that draws them."""
