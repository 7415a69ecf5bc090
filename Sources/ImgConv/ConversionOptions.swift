import FoundationEssentials
import Glibc
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// How class folders are ordered (and so numbered) when not listed explicitly.
public enum ClassSort: String, Sendable, CaseIterable {
    /// Unicode code points (`10` < `9` < `B` < `a`).
    case codepoint
    /// Digit runs compared as numbers (`2` < `10`), the rest by code points.
    case natural
}

/// Everything that decides what a conversion writes.
public struct ConversionOptions: Sendable {
    /// What the tensor's shape and values are planned from (size, fit, filter, colour, dtype,
    /// normalisation, layout).
    public var shaping = PlanRequest()
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
    public var tiffPages: TIFFPages = .first
    /// Frames of animated GIFs and WebPs: the first (the others counted), all, or an error.
    public var frames: AnimationFrames = .first {
        didSet { decode.allFrames = frames == .all }
    }
    /// Undecodable images are left out (and listed) instead of failing the run.
    public var skipBad = false
    public var compress = false
    /// Run `check` on the sources first and put its findings in the manifest (`check`).
    public var check = false
    /// Decoding threads; outputs do not depend on it.
    public var jobs: Int = ConversionOptions.defaultJobs
    public var decode = DecodeOptions()
    /// Other files the run reads (`--classes-file`), so that no output replaces them.
    public var otherInputs: [(path: String, role: String)] = []

    public init() {}

    /// How the labels are stored. One-hot rows default to float32 (what Keras's categorical
    /// labels and PyTorch's class probabilities are).
    public func labelEncoding(classCount: Int) -> LabelEncoding {
        LabelEncoding(dtype: labelDType ?? (onehot ? .float32 : nil), onehot: onehot, classCount: classCount)
    }

    public static var defaultJobs: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}
