import ArgumentParser
import ImgConv
import ImgConvCodecs

extension ColorMode: ExpressibleByArgument {}
extension DTypeChoice: ExpressibleByArgument {}
extension TIFFPages: ExpressibleByArgument {}

/// Options shared by every `to-*` command.
struct ConversionOptionGroup: ParsableArguments {
    @Argument(help: "Dataset root: one subfolder per class, images anywhere below it.")
    var root: String

    @Option(help: ArgumentHelp("Resize every image to HxW (bilinear, antialiased as Pillow).", valueName: "HxW"))
    var size: String?

    @Option(help: "Channels: auto (1 if every image is gray, else 3), gray, rgb, rgba.")
    var color: ColorMode = .auto

    @Option(help: "Image dtype: auto (narrowest of uint8, uint16, float32 holding every input exactly), uint8 (16-bit inputs scaled down), uint16, float32.")
    var dtype: DTypeChoice = .auto

    @Flag(inversion: .prefixedNo, help: "Turn images upright from their EXIF (JPEG, PNG) or TIFF orientation, as Pillow's ImageOps.exif_transpose.")
    var exifOrientation = true

    @Flag(help: "Accept JPEGs that decode with a warning (e.g. truncated downloads); each is listed in the manifest.")
    var allowTruncatedJpeg = false

    @Option(help: "Multipage TIFFs: first (convert page 1, count the others), all (every page an image), error.")
    var tiffPages: TIFFPages = .first

    @Flag(help: "Leave out images that cannot be decoded (listed on stderr and in the manifest).")
    var skipBad = false

    @Option(help: "Decoding threads (default: all cores). Outputs do not depend on it.")
    var jobs: Int = ConversionOptions.defaultJobs

    @Option(help: "Refuse images with more pixels than this, before decoding them.")
    var maxPixels: Int = DecodeLimits.defaultMaxPixels

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    func validate() throws {
        if let size, parseSize(size) == nil {
            throw ValidationError("--size must be HxW with positive integers, e.g. 224x224 (got '\(size)')")
        }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if maxPixels < 1 { throw ValidationError("--max-pixels must be at least 1") }
    }

    func parseSize(_ text: String) -> (height: Int, width: Int)? {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let h = Int(parts[0]), let w = Int(parts[1]), h > 0, w > 0,
              h <= 65535, w <= 65535 else { return nil }
        return (h, w)
    }

    func options(compress: Bool) -> ConversionOptions {
        var o = ConversionOptions()
        o.size = size.flatMap(parseSize)
        o.color = color
        o.skipBad = skipBad
        o.compress = compress
        o.jobs = jobs
        o.dtype = dtype
        o.tiffPages = tiffPages
        o.decode.limits = DecodeLimits(maxPixels: maxPixels)
        o.decode.exifOrientation = exifOrientation
        o.decode.allowTruncatedJPEG = allowTruncatedJpeg
        return o
    }
}
