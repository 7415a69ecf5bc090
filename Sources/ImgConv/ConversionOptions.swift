import Foundation
import ImgConvCodecs
import ImgConvCore

/// Channel policy of the output tensor.
public enum ColorMode: String, Sendable, CaseIterable {
    /// One channel if every image is gray (alpha dropped), else RGB.
    case auto, gray, rgb, rgba
    /// Each file's own channels (gray, gray+alpha, RGB or RGBA); all files must agree.
    case keep
}

/// How class folders are ordered (and so numbered) when not listed explicitly.
public enum ClassSort: String, Sendable, CaseIterable {
    /// Unicode code points (`10` < `9` < `B` < `a`).
    case codepoint
    /// Digit runs compared as numbers (`2` < `10`), the rest by code points.
    case natural
}

/// Element type of the image tensor.
public enum DTypeChoice: String, Sendable, CaseIterable {
    /// The narrowest of uint8, uint16, float32 that holds every input exactly.
    case auto, uint8, uint16, float16, float32
}

/// What to do with TIFF files of several pages.
public enum TIFFPages: String, Sendable, CaseIterable {
    /// Convert the first page, count the others in the summary.
    case first
    /// Every page becomes an image of the file's class.
    case all
    /// Refuse such files.
    case error
}

/// Everything that decides what a conversion writes.
public struct ConversionOptions: Sendable {
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
    /// Classes to convert, in label order; nil = every class folder.
    public var classes: [String]?
    public var classSort: ClassSort = .codepoint
    /// Shuffle the images with this seed (deterministic on every machine); nil keeps dataset order.
    public var shuffleSeed: UInt64?
    /// Divide the images into train/val/test by these fractions (and seed).
    public var split: SplitPlan?
    /// Labels as (N, classes) one-hot rows.
    public var onehot = false
    /// Label dtype (uint8, int32, int64); nil = the format's default.
    public var labelDType: DType?
    public var color: ColorMode = .auto
    public var dtype: DTypeChoice = .auto
    public var tiffPages: TIFFPages = .first
    /// Undecodable images are left out (and listed) instead of failing the run.
    public var skipBad = false
    public var compress = false
    /// Decoding threads; outputs do not depend on it.
    public var jobs: Int = ConversionOptions.defaultJobs
    public var decode = DecodeOptions()

    public init() {}

    public static var defaultJobs: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}
