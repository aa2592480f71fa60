"""NumPy/SciPy signal processing: F2F and FSK demodulation, swipe detection, the swipe synthesizer."""
