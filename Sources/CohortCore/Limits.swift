/// Explicit, configurable bounds on everything a client can ask of a daemon.
///
/// Defaults follow Spread where it has one (100 KiB payloads, 32-byte group names); every
/// decoder and the daemon core check them, and a violation is a typed ``WireError``.
public struct Limits: Hashable, Sendable, Codable {
    /// Largest client payload, in bytes (Spread: about 100 KB).
    public var payloadBytesMax: Int = 100 * 1024
    /// Most destination groups in one message.
    public var groupsPerMessageMax: Int = 100
    /// Longest group name, in bytes.
    public var groupNameBytesMax: Int = 32
    /// Longest private (client) name, in bytes.
    public var privateNameBytesMax: Int = 32
    /// Longest daemon name, in bytes.
    public var daemonNameBytesMax: Int = 32
    /// Most groups one client may be a member of at once.
    public var groupsPerClientMax: Int = 1000
    /// Longest authentication blob in the connect handshake, in bytes.
    public var authDataBytesMax: Int = 4096

    /// The default limits.
    public init() {}

    /// Limits with a few fields changed from their defaults.
    public init(
        payloadBytesMax: Int = 100 * 1024,
        groupsPerMessageMax: Int = 100,
        groupNameBytesMax: Int = 32,
        privateNameBytesMax: Int = 32,
        daemonNameBytesMax: Int = 32,
        groupsPerClientMax: Int = 1000,
        authDataBytesMax: Int = 4096
    ) {
        self.payloadBytesMax = payloadBytesMax
        self.groupsPerMessageMax = groupsPerMessageMax
        self.groupNameBytesMax = groupNameBytesMax
        self.privateNameBytesMax = privateNameBytesMax
        self.daemonNameBytesMax = daemonNameBytesMax
        self.groupsPerClientMax = groupsPerClientMax
        self.authDataBytesMax = authDataBytesMax
    }

    /// Largest frame body a daemon or client will accept: a multicast or delivery with every
    /// field at its maximum, plus headroom for status replies.
    public var frameBytesMax: Int {
        let namesBytes = (groupsPerMessageMax + 2) * (1 + max(groupNameBytesMax, privateGroupBytesMax))
        return max(64 + namesBytes + payloadBytesMax, 1 << 20)
    }

    /// Longest private group name, `#name#daemon`.
    public var privateGroupBytesMax: Int { privateNameBytesMax + daemonNameBytesMax + 2 }

    /// Checks that every bound is positive and that names fit their 1-byte length prefix.
    public func validate() throws(WireError) {
        let positive = [payloadBytesMax, groupsPerMessageMax, groupNameBytesMax, privateNameBytesMax,
                        daemonNameBytesMax, groupsPerClientMax, authDataBytesMax]
        guard positive.allSatisfy({ $0 > 0 }) else { throw .invalidValue("limits must be positive") }
        guard groupNameBytesMax <= 255, privateGroupBytesMax <= 255 else {
            throw .invalidValue("names longer than 255 bytes do not fit the wire format")
        }
        guard groupsPerMessageMax <= 255 else { throw .invalidValue("groupsPerMessageMax must be at most 255") }
        guard payloadBytesMax <= 64 * 1024 * 1024 else { throw .invalidValue("payloadBytesMax must be at most 64 MiB") }
    }
}

extension Limits {
    private enum CodingKeys: String, CodingKey {
        case payloadBytesMax, groupsPerMessageMax, groupNameBytesMax, privateNameBytesMax
        case daemonNameBytesMax, groupsPerClientMax, authDataBytesMax
    }

    /// Decodes limits; every field is optional and defaults as in ``init()``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = Limits()
        payloadBytesMax = try container.decodeIfPresent(Int.self, forKey: .payloadBytesMax) ?? defaults.payloadBytesMax
        groupsPerMessageMax = try container.decodeIfPresent(Int.self, forKey: .groupsPerMessageMax) ?? defaults.groupsPerMessageMax
        groupNameBytesMax = try container.decodeIfPresent(Int.self, forKey: .groupNameBytesMax) ?? defaults.groupNameBytesMax
        privateNameBytesMax = try container.decodeIfPresent(Int.self, forKey: .privateNameBytesMax) ?? defaults.privateNameBytesMax
        daemonNameBytesMax = try container.decodeIfPresent(Int.self, forKey: .daemonNameBytesMax) ?? defaults.daemonNameBytesMax
        groupsPerClientMax = try container.decodeIfPresent(Int.self, forKey: .groupsPerClientMax) ?? defaults.groupsPerClientMax
        authDataBytesMax = try container.decodeIfPresent(Int.self, forKey: .authDataBytesMax) ?? defaults.authDataBytesMax
    }
}
