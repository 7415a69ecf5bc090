import Foundation

/// The JSON document written beside every output (`Schemas/manifest.schema.json`). It holds no
/// timestamps, so the same inputs and options give the same bytes.
public struct Manifest: Codable, Sendable, Equatable {
    public static let formatName = "imgconv-manifest"
    public static let currentVersion = 1

    public struct Tool: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }
    }
    public struct Source: Codable, Sendable, Equatable {
        /// The dataset root as the user named it.
        public var root: String
        public var kind: String
        public init(root: String, kind: String) {
            self.root = root
            self.kind = kind
        }
    }
    public struct Output: Codable, Sendable, Equatable {
        public var format: String
        /// The output's file or folder name (not its full path).
        public var name: String
        public init(format: String, name: String) {
            self.format = format
            self.name = name
        }
    }
    public struct ClassRecord: Codable, Sendable, Equatable {
        public var index: Int
        public var name: String
        public var count: Int
        public init(index: Int, name: String, count: Int) {
            self.index = index
            self.name = name
            self.count = count
        }
    }
    public struct TensorRecord: Codable, Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var dtype: String
        /// SHA-256 of the tensor's data bytes (C order, little-endian), without the NPY header.
        public var sha256: String
        public init(name: String, shape: [Int], dtype: String, sha256: String) {
            self.name = name
            self.shape = shape
            self.dtype = dtype
            self.sha256 = sha256
        }
    }
    public struct FileRecord: Codable, Sendable, Equatable {
        public var path: String
        public var label: Int
        public var format: String
        public var sha256: String
        /// The TIFF page, when every page of a multipage file is converted.
        public var page: Int?
        /// The EXIF orientation that was applied, when not 1.
        public var orientation: Int?
        /// A problem the decoder recovered from (accepted on request).
        public var warning: String?
        /// The split (train, val, test) the image went to, when the dataset is split.
        public var split: String?
        public init(path: String, label: Int, format: String, sha256: String, page: Int? = nil,
                    orientation: Int? = nil, warning: String? = nil, split: String? = nil) {
            self.split = split
            self.path = path
            self.label = label
            self.format = format
            self.sha256 = sha256
            self.page = page
            self.orientation = orientation
            self.warning = warning
        }
    }
    public struct Options: Codable, Sendable, Equatable {
        public var size: [Int]?
        public var color: String
        public var compress: Bool
        public var skipBad: Bool
        public var resizeFilter: String
        public var dtype: String
        public var exifOrientation: Bool
        public var allowTruncatedJpeg: Bool
        public var tiffPages: String
        public var maxPixels: Int
        /// How --size was reached (stretch, crop, pad), when a size was given.
        public var fit: String?
        /// RGBA pad colour (8-bit units), with fit pad.
        public var padColor: [Int]?
        /// RGB colour transparent images were composited on.
        public var background: [Int]?
        /// "unit" when values were divided by the input's maximum.
        public var scale: String?
        public var mean: [Float]?
        public var std: [Float]?
        public var layout: String?
        /// Classes as listed by --classes / --classes-file.
        public var classes: [String]?
        public var sort: String?
        public var shuffleSeed: UInt64?
        /// "index" (N,) or "onehot" (N, classes).
        public var labels: String?
        public var labelDtype: String?
        /// The split fractions asked for (`train=0.8,val=0.1,test=0.1`).
        public var split: String?
        public var stratify: Bool?
        /// JPEGs were decoded with DCT scaling (--jpeg-draft).
        public var jpegDraft: Bool?
        public init(size: [Int]?, color: String, compress: Bool, skipBad: Bool, resizeFilter: String,
                    dtype: String, exifOrientation: Bool, allowTruncatedJpeg: Bool, tiffPages: String, maxPixels: Int) {
            self.size = size
            self.color = color
            self.compress = compress
            self.skipBad = skipBad
            self.resizeFilter = resizeFilter
            self.dtype = dtype
            self.exifOrientation = exifOrientation
            self.allowTruncatedJpeg = allowTruncatedJpeg
            self.tiffPages = tiffPages
            self.maxPixels = maxPixels
        }
    }
    public struct Summary: Codable, Sendable, Equatable {
        public var images: Int
        public var skipped: Int
        public var skippedByReason: [String: Int]
        /// Images turned upright from their EXIF/TIFF orientation.
        public var rotated: Int
        /// Pages of multipage TIFFs not converted (`--tiff-pages first`).
        public var ignoredTiffPages: Int
        /// Images in each split, when the dataset is split.
        public var splits: [String: Int]?
        public init(images: Int, skipped: Int, skippedByReason: [String: Int], rotated: Int, ignoredTiffPages: Int) {
            self.images = images
            self.skipped = skipped
            self.skippedByReason = skippedByReason
            self.rotated = rotated
            self.ignoredTiffPages = ignoredTiffPages
        }
    }

    public var format: String = Manifest.formatName
    public var version: Int = Manifest.currentVersion
    public var tool: Tool
    public var source: Source
    public var output: Output
    public var options: Options
    public var classes: [ClassRecord]
    public var tensors: [TensorRecord]
    public var files: [FileRecord]
    public var skipped: [SkippedFile]
    public var warnings: [String]
    public var summary: Summary

    public init(tool: Tool, source: Source, output: Output, options: Options, classes: [ClassRecord],
                tensors: [TensorRecord], files: [FileRecord], skipped: [SkippedFile], warnings: [String],
                summary: Summary) {
        self.tool = tool
        self.source = source
        self.output = output
        self.options = options
        self.classes = classes
        self.tensors = tensors
        self.files = files
        self.skipped = skipped
        self.warnings = warnings
        self.summary = summary
    }

    /// Deterministic JSON: sorted keys, two-space indentation, trailing newline.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = Array(try encoder.encode(self))
        data.append(0x0A)
        return data
    }

    /// - Throws: `ImgConvError` `.corruptInput` naming the path when the JSON does not decode.
    public static func decode(_ bytes: [UInt8], path: String) throws -> Manifest {
        do {
            let m = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
            guard m.format == formatName else {
                throw ImgConvError(.corruptInput, path: path, "not an imgconv manifest (format '\(m.format)')")
            }
            return m
        } catch let e as ImgConvError {
            throw e
        } catch {
            throw ImgConvError(.corruptInput, path: path, "manifest is not valid: \(error)")
        }
    }
}

public enum ToolInfo {
    public static let name = "imgconv"
    public static let version = "0.1.0"
}
