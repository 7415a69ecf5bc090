// `import ImgConv` is all a caller needs: the conversion layer (Converter, FormatConverter,
// Verifier, Exporter, Inspector, the plan/shard/merge entry points) with the types its API uses and
// the readers and writers behind it (containers, decoders, pixel buffers, errors).
@_exported import ImgConvCodecs
@_exported import ImgConvCore
@_exported import ImgConvFormats
