/// Channel policy of the output tensor.
public enum ColorMode: String, Sendable, CaseIterable {
    /// One channel if every image is gray (alpha dropped), else RGB.
    case auto, gray, rgb, rgba
    /// Each file's own channels (gray, gray+alpha, RGB or RGBA); all files must agree.
    case keep
}

/// Element type of the image tensor.
public enum DTypeChoice: String, Sendable, CaseIterable {
    /// The narrowest of uint8, uint16, float32 that holds every input exactly; uint32, int32 or
    /// float64 when an input's samples need them (32-bit integer and float64 TIFFs).
    case auto, uint8, uint16, float16, float32
    case uint32, int32, float64

    /// The samples images are conformed in, given the widest input (`auto` takes it).
    public func sampleDepth(widest: SampleDepth) -> SampleDepth {
        switch self {
        case .auto: return widest
        case .uint8: return .eight
        case .uint16: return .sixteen
        case .float16, .float32: return .float32
        case .uint32: return .uint32
        case .int32: return .int32
        case .float64: return .float64
        }
    }
}

/// What the user asked of the tensor's shape and values: the options a plan is made from.
public struct PlanRequest: Sendable {
    /// Target (height, width); nil keeps the images' own size, which must then be the same for all.
    public var size: (height: Int, width: Int)?
    public var fit: ResizeFit = .stretch
    public var filter: ResizeFilter = .bilinear
    /// RGBA in 8-bit units.
    public var padColor: [Double] = [0, 0, 0, 0]
    /// Composite transparent images on this RGB colour (8-bit units) instead of dropping alpha.
    public var background: [Double]?
    public var normalization = Normalization()
    public var layout: ImageLayout = .nhwc
    public var color: ColorMode = .auto
    public var dtype: DTypeChoice = .auto

    public init() {}
}

extension ImagePlan {
    /// One plan for a whole tensor, from the headers of its images (in dataset order): the requested
    /// size or the first image's (upright); channels from the colour mode; the sample type from the
    /// dtype choice (auto: the widest input).
    /// - Parameters:
    ///   - name: the file of header `i`, for messages.
    ///   - warn: told when 16-bit images are narrowed.
    /// - Throws: `.notFound` without headers, `.shapeMismatch` naming the file whose size (or
    ///   channels, with `keep`) differs, `.unsupported` for float images asked as integers,
    ///   `.invalidArgument` for normalisation that does not fit.
    public static func planning<C: RandomAccessCollection>(_ headers: C, name: (C.Index) -> String, request: PlanRequest,
                                                           warn: (String) -> Void) throws -> ImagePlan where C.Element == ImageHeader {
        guard let firstIndex = headers.indices.first else {
            throw ImgConvError(.notFound, "no decodable images found")
        }
        let first = headers[firstIndex]
        let (height, width): (Int, Int)
        if let size = request.size {
            (height, width) = (size.height, size.width)
        } else {
            (height, width) = (first.orientedHeight, first.orientedWidth)
            if let i = headers.indices.first(where: { headers[$0].orientedHeight != height || headers[$0].orientedWidth != width }) {
                throw ImgConvError(.shapeMismatch, path: name(i),
                                   "image is \(headers[i].orientedHeight)x\(headers[i].orientedWidth) but '\(name(firstIndex))' is \(height)x\(width); pass --size HxW to resize all images")
            }
        }
        let channels: Int
        switch request.color {
        case .auto: channels = headers.allSatisfy { $0.isGray } ? 1 : 3
        case .gray: channels = 1
        case .rgb: channels = 3
        case .rgba: channels = 4
        case .keep:
            channels = first.channels
            if let i = headers.indices.first(where: { headers[$0].channels != channels }) {
                throw ImgConvError(.shapeMismatch, path: name(i),
                                   "has \(headers[i].channels) channels but '\(name(firstIndex))' has \(channels) (--color keep needs them to agree)")
            }
        }
        let widest = headers.reduce(SampleDepth.eight) { $0.joined($1.depth) }
        let depth = request.dtype.sampleDepth(widest: widest)
        if !depth.holds(widest) {
            let lost = headers.indices.filter { !depth.holds(headers[$0].depth) }
            let integer = depth == .eight || depth == .sixteen || depth == .uint32 || depth == .int32
            if integer, let i = lost.first(where: { headers[$0].depth.isFloatingPoint }) {
                throw ImgConvError(.unsupported, path: name(i),
                                   "holds floating-point samples, which \(depth.dtype.rawValue) cannot hold (use --dtype float32 or auto)")
            }
            if integer, let i = lost.first(where: { headers[$0].depth != .sixteen }) {
                throw ImgConvError(.unsupported, path: name(i),
                                   "holds \(headers[i].depth.dtype.rawValue) samples, which \(depth.dtype.rawValue) cannot hold (use --dtype auto or float64)")
            }
            if depth == .float32 {
                warn("rounding \(lost.count) images of 32-bit integer or float64 samples to float32")
            } else {
                warn("narrowing \(lost.count) 16-bit images to uint8 by scaling (value / 257, rounded)")
            }
        }
        if !request.normalization.isIdentity && depth != .float32 {
            throw ImgConvError(.invalidArgument, "--scale, --mean and --std need a float dtype (--dtype float32 or float16)")
        }
        var normalization = request.normalization
        for (option, values) in [("--mean", normalization.mean), ("--std", normalization.std)] {
            if let values, values.count != 1 && values.count != channels {
                throw ImgConvError(.invalidArgument, "\(option) has \(values.count) values for \(channels) channels")
            }
        }
        normalization.mean = normalization.mean.map { $0.count == 1 ? Array(repeating: $0[0], count: channels) : $0 }
        normalization.std = normalization.std.map { $0.count == 1 ? Array(repeating: $0[0], count: channels) : $0 }
        var plan = ImagePlan(width: width, height: height, channels: channels, depth: depth)
        plan.fit = request.fit
        plan.filter = request.filter
        plan.padColor = request.padColor
        plan.background = request.background
        plan.normalization = normalization
        plan.layout = request.layout
        if request.dtype == .float16 { plan.outputDType = .float16 }
        return plan
    }

    /// Whether an image of this header gives the same plan as the one made without it (what a
    /// single pass checks each image against).
    public func admits(_ header: ImageHeader, request: PlanRequest) -> Bool {
        if request.size == nil && (header.orientedWidth != width || header.orientedHeight != height) { return false }
        if request.color == .auto && channels == 1 && !header.isGray { return false }
        if request.color == .keep && header.channels != channels { return false }
        return depth.holds(header.depth)
    }
}
