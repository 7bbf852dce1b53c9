"""Audio: files to waves (decode.py: soundfile, mixdown, resampling, level, length) and waves to log-mel
spectrograms in batches with torch (mel.py). The feature that uses both is data/features/audio.py."""
