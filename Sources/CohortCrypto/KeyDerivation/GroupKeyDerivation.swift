public import CohortCore

/// The daemon-side group key of the integrated architectures (DESIGN.md §1):
/// K_{g,i} = HMAC-SHA256(K_s, g ‖ view_id(g, i)), where K_s is the daemons' shared key (agreed
/// with TGDH) and the view id names the i-th view of group g. Every daemon computes the same
/// key for the same view; keys of different views or groups are unrelated. One HMAC context per
/// daemon key, reused for every group key. Not safe for concurrent use; see ``CipherSuite``.
public final class GroupKeyDerivation {
    private let mac: HMACSHA256

    /// Derivation under the daemons' shared key `serverKey`.
    public init(serverKey: [UInt8]) throws(CryptoError) {
        mac = try HMACSHA256(key: serverKey)
    }

    /// K_{g,i}: 32 bytes, the input of ``HKDF/keyMaterial(for:secret:context:)``.
    public func groupKey(group: GroupName, viewID: GroupViewID) -> [UInt8] {
        // An unambiguous encoding: length-prefixed names, fixed-width numbers.
        var writer = WireWriter(capacity: 80)
        writer.writeShortString(group.rawValue)
        writer.write(viewID.configuration.epoch)
        writer.writeShortString(viewID.configuration.representative)
        writer.write(viewID.sequence)
        return mac.code(writer.bytes)
    }
}
