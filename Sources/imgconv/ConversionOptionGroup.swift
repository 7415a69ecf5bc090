import FoundationEssentials
import Glibc
import ImgConvCore
import ArgumentParser
import ImgConv
import ImgConvCodecs

/// An option's value that is one of an enum's raw values. Its values and their descriptions are
/// the raw values themselves: ArgumentParser's defaults make them through key paths and string
/// interpolation (dynamic casts, each first one a scan of every conformance in the binary), a
/// sixth of the work of a start-up before this.
protocol RawValueArgument: ExpressibleByArgument, CaseIterable, RawRepresentable where RawValue == String {}

extension RawValueArgument {
    public static var allValueStrings: [String] { allCases.map { $0.rawValue } }
    public static var allValueDescriptions: [String: String] { [:] }
    public static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
    public var defaultValueDescription: String { rawValue }
}

extension ColorMode: RawValueArgument {}
extension ResizeFit: RawValueArgument {}
extension ResizeFilter: RawValueArgument {}
extension ImageLayout: RawValueArgument {}
extension ClassSort: RawValueArgument {}

enum LabelStyle: String, RawValueArgument { case index, onehot }
enum LabelDType: String, RawValueArgument { case uint8, int32, int64, float32 }
extension DTypeChoice: RawValueArgument {}
extension TIFFPages: RawValueArgument {}
extension AnimationFrames: RawValueArgument {}
extension ProgressMode: RawValueArgument {}

/// Options shared by every `to-*` command.
struct ConversionOptionGroup: ParsableArguments {
    @Argument(help: ArgumentHelp("ROOT OUT: the dataset root (one subfolder per class, images anywhere below it) and the output; with --list, only OUT.", valueName: "root-and-output"))
    var paths: [String] = []

    @Option(help: ArgumentHelp("A CSV of path,label[,split] rows to convert instead of ROOT (relative paths resolve against the CSV's folder).", valueName: "csv"))
    var list: String?

    /// The dataset to read.
    var source: DatasetSource { list.map { .list($0) } ?? .folders(paths[0]) }
    /// The output path.
    var output: String { paths[paths.count - 1] }

    @Option(help: ArgumentHelp("Resize every image to HxW (bilinear, antialiased as Pillow).", valueName: "HxW"))
    var size: String?

    @Option(help: "How --size is reached: stretch, crop (cover then centre-crop, as ImageOps.fit), pad (fit inside then centre, as ImageOps.pad).")
    var fit: ResizeFit = .stretch

    @Option(help: "Resampling filter, as Pillow's: nearest, bilinear, bicubic, lanczos, area (BOX).")
    var filter: ResizeFilter = .bilinear

    @Option(help: ArgumentHelp("Colour around padded images (--fit pad): R,G,B[,A] 0-255, #rrggbb, black or white.", valueName: "color"))
    var padColor: String = "0,0,0"

    @Option(help: ArgumentHelp("Composite transparent images on this colour instead of dropping alpha (R,G,B, #rrggbb, black, white).", valueName: "color"))
    var background: String?

    @Option(help: "Channels: auto (1 if every image is gray, else 3), gray, rgb, rgba, keep (each file's own; all must agree).")
    var color: ColorMode = .auto

    @Option(help: ArgumentHelp("Float outputs: 'unit' divides by the input's maximum (255 or 65535).", valueName: "unit"))
    var scale: String?

    @Option(help: ArgumentHelp("Float outputs: subtract per-channel means (after --scale).", valueName: "m[,m,m]"))
    var mean: String?

    @Option(help: ArgumentHelp("Float outputs: divide by per-channel standard deviations (after --mean).", valueName: "s[,s,s]"))
    var std: String?

    @Option(help: "Image layout: nhwc (N,H,W,C) or nchw (N,C,H,W).")
    var layout: ImageLayout = .nhwc

    @Option(help: ArgumentHelp("Only these classes, in this order (defines the labels).", valueName: "a,b,c"))
    var classes: String?

    @Option(help: ArgumentHelp("A file with one class name per line (same as --classes).", valueName: "file"))
    var classesFile: String?

    @Option(help: "Class order when not listed: codepoint (Unicode code points, the default) or natural (2 before 10).")
    var sort: ClassSort = .codepoint

    @Option(help: ArgumentHelp("Divide the images into splits, e.g. train=0.8,val=0.1,test=0.1; each split is its own pair (trainXs/trainYs, valXs/valYs, testXs/testYs). Folders ROOT/train, ROOT/val, ROOT/test are detected without it.", valueName: "name=fraction,..."))
    var split: String?

    @Flag(help: "With --split: divide every class in the same proportions.")
    var stratify = false

    @Option(help: "Labels: index (N,) or onehot (N, classes).")
    var labels: LabelStyle = .index

    @Option(help: "Label dtype: uint8, int32 or int64 (default int64; IDX: the narrowest for the class count); one-hot rows also float32 (their default).")
    var labelDtype: LabelDType?

    @Flag(help: "Shuffle the images (deterministically, with --seed).")
    var shuffle = false

    @Option(help: "Seed for --shuffle and --split (default 0). The same seed gives the same order on every machine.")
    var seed: UInt64?

    @Option(help: "Image dtype: auto (narrowest of uint8, uint16, float32 holding every input exactly; uint32, int32 or float64 for 32-bit integer and 64-bit float TIFFs), uint8 (16-bit inputs scaled down), uint16, float16, float32 (32-bit integers and float64 rounded), uint32, int32, float64.")
    var dtype: DTypeChoice = .auto

    @Flag(inversion: .prefixedNo, help: "Turn images upright from their EXIF (JPEG, PNG, WebP; WebP XMP too) or TIFF orientation, as Pillow's ImageOps.exif_transpose.")
    var exifOrientation = true

    @Flag(help: "With --size at most half the source: decode JPEGs with libjpeg-turbo's DCT scaling (1/2, 1/4, 1/8), then resize. Faster; values differ slightly from a full decode.")
    var jpegDraft = false

    @Flag(help: "Accept JPEGs that decode with a warning (e.g. truncated downloads); each is listed in the manifest.")
    var allowTruncatedJpeg = false

    @Option(help: "Multipage TIFFs: first (convert page 1, count the others), all (every page an image), error.")
    var tiffPages: TIFFPages = .first

    @Option(help: "Animated GIFs and WebPs: first (convert frame 1, count the others), all (every frame, composed as Pillow's ImageSequence gives it, an image), error.")
    var frames: AnimationFrames = .first

    @Flag(help: "Leave out images that cannot be decoded (listed on stderr and in the manifest).")
    var skipBad = false

    @Option(name: .customLong("jobs"), help: ArgumentHelp("Decoding threads (default: all cores). Outputs do not depend on it.", valueName: "jobs"))
    var jobsOption: Int?

    /// Decoding threads: --jobs, else every core.
    var jobs: Int { jobsOption ?? ConversionOptions.defaultJobs }

    @Option(help: "Refuse images with more pixels than this, before decoding them.")
    var maxPixels: Int = DecodeLimits.defaultMaxPixels

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    @Option(help: "Progress on stderr: auto (a bar on a terminal; none with --quiet), json (a JSON line a second, for scripts and notebooks) or none.")
    var progress: ProgressMode = .auto

    /// --progress, with `auto` meaning none under --quiet.
    var progressMode: ProgressMode { quiet && progress == .auto ? .none : progress }

    @Flag(help: "Run 'imgconv check' on the sources first (one more read of every image) and put its findings in the manifest ('check').")
    var check = false

    @Option(help: ArgumentHelp("Convert one shard of this plan (written by 'imgconv plan') into OUTDIR; the conversion options are the plan's.", valueName: "plan.json"))
    var plan: String?

    @Option(help: ArgumentHelp("With --plan: the shard to convert, K/N (K from 0 to N-1; N as in the plan).", valueName: "K/N"))
    var shard: String?

    @Flag(help: "With --plan: convert the shard even when its part is already there and verifies.")
    var force = false

    /// K and N of `--shard K/N`.
    var shardNumbers: (k: Int, n: Int)? {
        guard let shard else { return nil }
        let f = shard.split(separator: "/", omittingEmptySubsequences: false)
        guard f.count == 2, let k = Int(f[0]), let n = Int(f[1]), n >= 1, k >= 0, k < n else { return nil }
        return (k, n)
    }

    /// The positional paths: ROOT (unless --list) and `outputs` more (`to-*`: OUT or, with
    /// --plan, OUTDIR alone; `plan`: none, it takes -o).
    func validatePaths(outputs: Int) throws {
        if plan != nil {
            if paths.count != 1 || list != nil { throw ValidationError("with --plan, give only OUTDIR (the plan names the dataset)") }
            return
        }
        let expected = (list == nil ? 1 : 0) + outputs
        if paths.count != expected {
            throw ValidationError(list == nil ? (outputs == 0 ? "expected ROOT (or --list CSV)" : "expected ROOT and OUT (or --list CSV and OUT)")
                                              : (outputs == 0 ? "with --list, give no ROOT" : "with --list, give only OUT"))
        }
    }

    /// Parses a colour: R,G,B[,A] (0-255), #rrggbb[aa], black, white.
    /// The class names of `--classes-file`: one a line, trimmed, blank lines ignored; read in
    /// pieces, with as many names as integer labels can have.
    static func readClassNames(_ path: String) throws -> [String] {
        var names: [String] = []
        try forEachLine(ofFile: path) { line, number in
            let name = line.trimmingWhitespace()
            guard !name.isEmpty else { return }
            guard names.count <= ListScanner.maxIntegerLabel else {
                throw ImgConvError(.limitExceeded, path: "\(path):\(number)", "more than \(ListScanner.maxIntegerLabel + 1) class names")
            }
            names.append(name)
        }
        return names
    }

    static func parseColor(_ text: String) -> [Double]? {
        switch text.lowercased() {
        case "black": return [0, 0, 0, 255]
        case "white": return [255, 255, 255, 255]
        case "gray", "grey": return [128, 128, 128, 255]
        default: break
        }
        if text.hasPrefix("#") {
            let hex = Array(text.dropFirst())
            guard hex.count == 6 || hex.count == 8 else { return nil }
            var out: [Double] = []
            for i in stride(from: 0, to: hex.count, by: 2) {
                guard let v = UInt8(String(hex[i..<i + 2]), radix: 16) else { return nil }
                out.append(Double(v))
            }
            return out.count == 3 ? out + [255] : out
        }
        let parts = text.split(separator: ",").map { Double($0.trimmingWhitespace()) }
        guard (1...4).contains(parts.count), parts.allSatisfy({ $0 != nil && $0! >= 0 && $0! <= 255 }) else { return nil }
        var v = parts.map { $0! }
        if v.count == 1 { v = [v[0], v[0], v[0]] }
        if v.count == 2 { return nil }
        return v.count == 3 ? v + [255] : v
    }

    static func parseFloats(_ text: String) -> [Float]? {
        let v = text.split(separator: ",").map { Float($0.trimmingWhitespace()) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil && $0!.isFinite }) else { return nil }
        return v.map { $0! }
    }

    func validate() throws {
        if plan != nil && shardNumbers == nil { throw ValidationError("--plan needs --shard K/N (K from 0 to N-1)") }
        if plan == nil && (shard != nil || force) { throw ValidationError("--shard and --force go with --plan") }
        if plan != nil && check { throw ValidationError("--check does not go with --plan (run 'imgconv check' on the dataset)") }
        if Self.parseColor(padColor) == nil { throw ValidationError("--pad-color: cannot read '\(padColor)' (R,G,B[,A] 0-255, #rrggbb, black, white)") }
        if let background, Self.parseColor(background) == nil { throw ValidationError("--background: cannot read '\(background)'") }
        if let scale, scale != "unit" { throw ValidationError("--scale takes 'unit'") }
        for (name, value) in [("--mean", mean), ("--std", std)] {
            if let value, Self.parseFloats(value) == nil { throw ValidationError("\(name): cannot read '\(value)' (comma-separated numbers)") }
        }
        if let std, let v = Self.parseFloats(std), v.contains(0) { throw ValidationError("--std must not be 0") }
        if (scale != nil || mean != nil || std != nil) && dtype != .float32 && dtype != .float16 {
            throw ValidationError("--scale, --mean and --std need --dtype float32 or float16")
        }
        if classes != nil && classesFile != nil { throw ValidationError("give --classes or --classes-file, not both") }
        if labelDtype == .float32 && labels != .onehot { throw ValidationError("--label-dtype float32 applies to one-hot rows (--labels onehot)") }
        if stratify && split == nil { throw ValidationError("--stratify goes with --split") }
        if seed != nil && !shuffle && split == nil { throw ValidationError("--seed goes with --shuffle or --split") }
        if let split {
            do { _ = try SplitPlan.parse(split, stratify: stratify, seed: seed ?? 0) } catch let e as ImgConvError { throw ValidationError(e.message) }
        }
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

    func options(compress: Bool) throws -> ConversionOptions {
        var o = ConversionOptions()
        o.shaping.fit = fit
        o.shaping.filter = filter
        o.shaping.padColor = Self.parseColor(padColor) ?? [0, 0, 0, 255]
        o.shaping.background = background.flatMap(Self.parseColor)
        o.shaping.normalization = Normalization(unitScale: scale == "unit", mean: mean.flatMap(Self.parseFloats),
                                        std: std.flatMap(Self.parseFloats))
        o.shaping.layout = layout
        o.classSort = sort
        o.shuffleSeed = shuffle ? seed ?? 0 : nil
        o.split = try split.map { try SplitPlan.parse($0, stratify: stratify, seed: seed ?? 0) }
        o.onehot = labels == .onehot
        o.labelDType = labelDtype.flatMap { DType(rawValue: $0.rawValue) }
        if let classes {
            o.classes = classes.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        } else if let classesFile {
            o.otherInputs.append((classesFile, "--classes-file"))
            o.classes = try Self.readClassNames(classesFile)
        }
        o.shaping.size = size.flatMap(parseSize)
        o.shaping.color = color
        o.skipBad = skipBad
        o.compress = compress
        o.jobs = jobs
        o.shaping.dtype = dtype
        o.tiffPages = tiffPages
        o.decode.limits = DecodeLimits(maxPixels: maxPixels)
        o.decode.exifOrientation = exifOrientation
        o.decode.allowTruncatedJPEG = allowTruncatedJpeg
        o.decode.jpegDraft = jpegDraft
        o.decode.narrowHighDepth = dtype == .uint8
        o.frames = frames
        o.check = check
        return o
    }
}
