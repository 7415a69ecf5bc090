import ImgConvCodecs
import ImgConvCore

/// The one place conversion options map to the manifest's `options` and back: a conversion
/// records them, and `verify --against` rebuilds the plan and the decoder settings from them.
extension ConversionOptions {
    /// The manifest's record of these options.
    public func manifestOptions() -> Manifest.Options {
        var o = Manifest.Options(size: shaping.size.map { [$0.height, $0.width] }, color: shaping.color.rawValue, compress: compress,
                                 skipBad: skipBad, resizeFilter: shaping.filter.rawValue, dtype: shaping.dtype.rawValue,
                                 exifOrientation: decode.exifOrientation, allowTruncatedJpeg: decode.allowTruncatedJPEG,
                                 tiffPages: tiffPages.rawValue, maxPixels: decode.limits.maxPixels)
        o.fit = shaping.size == nil ? nil : shaping.fit.rawValue
        o.padColor = shaping.size != nil && shaping.fit == .pad ? shaping.padColor.map { Int($0) } : nil
        o.background = shaping.background.map { $0.prefix(3).map { Int($0) } }
        o.scale = shaping.normalization.unitScale ? "unit" : nil
        o.mean = shaping.normalization.mean
        o.std = shaping.normalization.std
        o.layout = shaping.layout.rawValue
        o.classes = classes
        o.sort = classSort.rawValue
        o.shuffleSeed = shuffleSeed
        o.labels = onehot ? "onehot" : "index"
        o.jpegDraft = decode.jpegDraft ? true : nil
        o.frames = frames.rawValue
        o.labelDtype = labelDType?.rawValue
        o.split = split.map { $0.parts.map { "\($0.name)=\($0.fraction)" }.joined(separator: ",") }
        o.stratify = split?.stratify
        return o
    }
}

extension ConversionOptions {
    /// The options a manifest (or a plan) records, back: what a shard converts with. `jobs` is
    /// the machine's; the split seed is not needed (a plan holds each split's order).
    /// - Throws: `.invalidArgument` for a value this version does not know.
    public init(manifest o: Manifest.Options) throws {
        self.init()
        func value<T: RawRepresentable>(_ raw: String?, _ name: String) throws -> T? where T.RawValue == String {
            guard let raw else { return nil }
            guard let v = T(rawValue: raw) else { throw ImgConvError(.invalidArgument, "\(name) '\(raw)' is not known to this imgconv") }
            return v
        }
        shaping.size = o.size.flatMap { $0.count == 2 ? (height: $0[0], width: $0[1]) : nil }
        shaping.color = try value(o.color, "color") ?? .auto
        shaping.dtype = try value(o.dtype, "dtype") ?? .auto
        shaping.filter = try value(o.resizeFilter, "resizeFilter") ?? .bilinear
        shaping.fit = try value(o.fit, "fit") ?? .stretch
        if let pad = o.padColor { shaping.padColor = pad.map(Double.init) + (pad.count == 3 ? [255] : []) }
        shaping.background = o.background.map { $0.map(Double.init) + [255] }
        shaping.normalization = Normalization(unitScale: o.scale == "unit", mean: o.mean, std: o.std)
        shaping.layout = try value(o.layout, "layout") ?? .nhwc
        compress = o.compress
        skipBad = o.skipBad
        classes = o.classes
        classSort = try value(o.sort, "sort") ?? .codepoint
        shuffleSeed = o.shuffleSeed
        onehot = o.labels == "onehot"
        labelDType = try value(o.labelDtype, "labelDtype")
        if let text = o.split { split = try SplitPlan.parse(text, stratify: o.stratify ?? false, seed: 0) }
        tiffPages = try value(o.tiffPages, "tiffPages") ?? .first
        frames = try value(o.frames, "frames") ?? .first
        decode = o.decodeOptions
    }
}

extension Manifest.Options {
    /// The decoder settings the conversion used.
    public var decodeOptions: DecodeOptions {
        var d = DecodeOptions()
        d.exifOrientation = exifOrientation
        d.allowTruncatedJPEG = allowTruncatedJpeg
        d.jpegDraft = jpegDraft ?? false
        d.narrowHighDepth = dtype == "uint8"
        d.allFrames = frames == AnimationFrames.all.rawValue
        d.limits = DecodeLimits(maxPixels: maxPixels)
        return d
    }

    /// The plan a conversion used for an images tensor: its shape and dtype from the tensor's
    /// record, the shaping from these options. An int32 tensor is a 32-bit TIFF's, or uint16 pixels
    /// IDX stores as int32: either way the values are the decoded ones.
    /// - Throws: `.verificationFailed` for a tensor that cannot have been decoded from images.
    public func imagePlan(for record: Manifest.TensorRecord, path: String) throws -> ImagePlan {
        let layout = ImageLayout(rawValue: self.layout ?? "nhwc") ?? .nhwc
        let s = record.shape
        let (height, width, channels): (Int, Int, Int)
        switch s.count {
        case 4 where layout == .nchw: (channels, height, width) = (s[1], s[2], s[3])
        case 4: (height, width, channels) = (s[1], s[2], s[3])
        case 3: (height, width, channels) = (s[1], s[2], 1)   // IDX leaves out one channel
        default: throw ImgConvError(.verificationFailed, path: path, "\(record.name) of shape \(s) is not a tensor of images")
        }
        var depth: SampleDepth
        var outputDType: DType?
        switch DType(rawValue: record.dtype) {
        case .uint8?: depth = .eight
        case .uint16?: depth = .sixteen
        case .float32?: depth = .float32
        case .float16?: (depth, outputDType) = (.float32, .float16)
        case .int32?: depth = .int32
        case .uint32?: depth = .uint32
        case .float64?: depth = .float64
        default: throw ImgConvError(.verificationFailed, path: path, "\(record.name) of dtype \(record.dtype) was not decoded from images")
        }
        var plan = ImagePlan(width: width, height: height, channels: channels, depth: depth)
        plan.outputDType = outputDType
        plan.layout = s.count == 4 ? layout : .nhwc
        plan.fit = ResizeFit(rawValue: fit ?? "stretch") ?? .stretch
        plan.filter = ResizeFilter(rawValue: resizeFilter) ?? .bilinear
        if let pad = padColor { plan.padColor = pad.map(Double.init) + (pad.count == 3 ? [255] : []) }
        plan.background = background.map { $0.map(Double.init) }
        func perChannel(_ v: [Float]?) -> [Float]? { v.map { $0.count == 1 ? Array(repeating: $0[0], count: channels) : $0 } }
        plan.normalization = Normalization(unitScale: scale == "unit", mean: perChannel(mean), std: perChannel(std))
        return plan
    }
}
