using System.Buffers.Binary;
using System.Security.Cryptography;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// A reproducible byte stream (xorshift64, eight bytes per step) so both ends of a transfer can hash
/// the same content without holding it in memory. Chunks must be multiples of 8 bytes.
/// </summary>
internal struct TestData(ulong seed)
{
    public const int ChunkSize = 64 * 1024;

    private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;

    public void Fill(Span<byte> chunk)
    {
        for (var i = 0; i + 8 <= chunk.Length; i += 8)
        {
            _state ^= _state << 13;
            _state ^= _state >> 7;
            _state ^= _state << 17;
            BinaryPrimitives.WriteUInt64LittleEndian(chunk[i..], _state);
        }
    }

    public static string Sha256(long length, ulong seed)
    {
        var data = new TestData(seed);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunk = new byte[ChunkSize];
        for (long sent = 0; sent < length; sent += ChunkSize)
        {
            data.Fill(chunk);
            hash.AppendData(chunk, 0, (int)Math.Min(ChunkSize, length - sent));
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    /// <summary>An HTTP request body streaming <paramref name="length"/> bytes of the sequence.</summary>
    public sealed class Content(long length, ulong seed) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            var data = new TestData(seed);
            var chunk = new byte[ChunkSize];
            for (long sent = 0; sent < length; sent += ChunkSize)
            {
                data.Fill(chunk);
                await stream.WriteAsync(chunk.AsMemory(0, (int)Math.Min(ChunkSize, length - sent)));
            }
        }

        protected override bool TryComputeLength(out long length1)
        {
            length1 = length;
            return true;
        }
    }
}
