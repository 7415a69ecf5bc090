import ImgConvCore
import ImgConvCodecs

/// Channel policy of the output tensor.
public enum ColorMode: String, Sendable, CaseIterable {
    /// One channel if every image is gray (alpha dropped), else RGB.
    case auto, gray, rgb, rgba
}

/// Everything that decides what a conversion writes.
public struct ConversionOptions: Sendable {
    /// Target (height, width); nil keeps the images' own size, which must then be the same for all.
    public var size: (height: Int, width: Int)?
    public var color: ColorMode = .auto
    /// Undecodable images are left out (and listed) instead of failing the run.
    public var skipBad = false
    public var compress = false
    /// Decoding threads; outputs do not depend on it.
    public var jobs: Int = ConversionOptions.defaultJobs
    public var limits = DecodeLimits()

    public init() {}

    public static var defaultJobs: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}
import Foundation
