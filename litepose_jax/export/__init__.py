"""TFLite (LiteRT) export of LitePose: BN folding, conversion, quantisation, runtime, benchmark."""
