import CGMP
import COpenSSL

/// Fixed-modulus arithmetic on big-endian byte strings, one implementation per backend.
protocol ModularArithmetic: AnyObject {
    /// base^exponent mod m, `width` bytes.
    func power(_ base: [UInt8], _ exponent: [UInt8]) -> [UInt8]
    /// a·b mod m.
    func multiply(_ a: [UInt8], _ b: [UInt8]) -> [UInt8]
    /// a⁻¹ mod m, or nil.
    func inverse(_ a: [UInt8]) -> [UInt8]?
    /// a mod m.
    func reduce(_ a: [UInt8]) -> [UInt8]
    /// Whether a is a nonzero quadratic residue modulo the (prime) modulus: the Jacobi symbol,
    /// microseconds where a^q costs a full exponentiation.
    func isQuadraticResidue(_ a: [UInt8]) -> Bool
}

/// GMP backend. Integers are created per call: exponentiation dominates its cost.
final class GMPArithmetic: ModularArithmetic {
    private let modulus: UnsafeMutablePointer<__mpz_struct>
    private let width: Int

    init(modulus bytes: [UInt8]) {
        width = bytes.count
        modulus = GMPArithmetic.integer(bytes)
    }

    deinit { Self.free(modulus) }

    static func integer(_ bytes: [UInt8]) -> UnsafeMutablePointer<__mpz_struct> {
        let value = UnsafeMutablePointer<__mpz_struct>.allocate(capacity: 1)
        cohort_mpz_init(value)
        bytes.withUnsafeBufferPointer { cohort_mpz_import(value, $0.baseAddress, $0.count) }
        return value
    }

    static func free(_ value: UnsafeMutablePointer<__mpz_struct>) {
        cohort_mpz_clear(value)
        value.deallocate()
    }

    private func bytes(_ value: UnsafeMutablePointer<__mpz_struct>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width)
        let ok = out.withUnsafeMutableBufferPointer { cohort_mpz_export_padded(value, $0.baseAddress, width) }
        precondition(ok == 1, "a residue wider than its modulus")
        return out
    }

    private func compute(_ operands: [[UInt8]], _ body: (UnsafeMutablePointer<__mpz_struct>, [UnsafeMutablePointer<__mpz_struct>]) -> Bool) -> [UInt8]? {
        let result = Self.integer([])
        let values = operands.map(Self.integer)
        defer {
            Self.free(result)
            values.forEach(Self.free)
        }
        return body(result, values) ? bytes(result) : nil
    }

    func power(_ base: [UInt8], _ exponent: [UInt8]) -> [UInt8] {
        compute([base, exponent]) { result, values in
            // mpz_powm_sec requires a positive exponent; x^0 = 1.
            if cohort_mpz_cmp_ui(values[1], 0) > 0 {
                cohort_mpz_powm_sec(result, values[0], values[1], modulus)
            } else {
                cohort_mpz_import(result, [1], 1)
            }
            return true
        }!
    }

    func multiply(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        compute([a, b]) { result, values in
            cohort_mpz_mul_mod(result, values[0], values[1], modulus)
            return true
        }!
    }

    func inverse(_ a: [UInt8]) -> [UInt8]? {
        compute([a]) { result, values in cohort_mpz_invert(result, values[0], modulus) != 0 }
    }

    func reduce(_ a: [UInt8]) -> [UInt8] {
        compute([a]) { result, values in
            cohort_mpz_mod(result, values[0], modulus)
            return true
        }!
    }

    func isQuadraticResidue(_ a: [UInt8]) -> Bool {
        compute([a]) { _, values in cohort_mpz_jacobi(values[0], modulus) == 1 } != nil
    }
}

/// OpenSSL BN backend, with one BN_CTX and one Montgomery context for the modulus.
final class OpenSSLArithmetic: ModularArithmetic {
    private let modulus: OpaquePointer
    private let montgomery: OpaquePointer
    private let context: OpaquePointer
    private let width: Int

    init(modulus bytes: [UInt8]) throws(CryptoError) {
        width = bytes.count
        guard let context = BN_CTX_new(), let modulus = BN_bin2bn(bytes, Int32(bytes.count), nil),
              let montgomery = BN_MONT_CTX_new(), BN_MONT_CTX_set(montgomery, modulus, context) == 1
        else { throw OpenSSL.lastError("BN setup") }
        self.context = context
        self.modulus = modulus
        self.montgomery = montgomery
    }

    deinit {
        BN_MONT_CTX_free(montgomery)
        BN_free(modulus)
        BN_CTX_free(context)
    }

    private func compute(_ operands: [[UInt8]], _ body: (OpaquePointer, [OpaquePointer]) -> Bool) -> [UInt8]? {
        let result = BN_new()!
        let values = operands.map { BN_bin2bn($0, Int32($0.count), nil)! }
        defer {
            BN_free(result)
            values.forEach { BN_clear_free($0) }
        }
        guard body(result, values) else {
            ERR_clear_error()
            return nil
        }
        var out = [UInt8](repeating: 0, count: width)
        precondition(BN_bn2binpad(result, &out, Int32(width)) == Int32(width), "a residue wider than its modulus")
        return out
    }

    func power(_ base: [UInt8], _ exponent: [UInt8]) -> [UInt8] {
        compute([base, exponent]) { result, values in
            BN_set_flags(values[1], BN_FLG_CONSTTIME)
            return BN_mod_exp_mont_consttime(result, values[0], values[1], modulus, context, montgomery) == 1
        }!
    }

    func multiply(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        compute([a, b]) { result, values in BN_mod_mul(result, values[0], values[1], modulus, context) == 1 }!
    }

    func inverse(_ a: [UInt8]) -> [UInt8]? {
        compute([a]) { result, values in BN_mod_inverse(result, values[0], modulus, context) != nil }
    }

    func reduce(_ a: [UInt8]) -> [UInt8] {
        compute([a]) { result, values in BN_nnmod(result, values[0], modulus, context) == 1 }!
    }

    func isQuadraticResidue(_ a: [UInt8]) -> Bool {
        compute([a]) { _, values in BN_kronecker(values[0], modulus, context) == 1 } != nil
    }
}
