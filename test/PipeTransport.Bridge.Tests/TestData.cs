using System.Buffers.Binary;
using System.Security.Cryptography;

namespace PipeTransport.Bridge.Tests;

/// <summary>
/// Pseudo-random test streams: one random 1 MiB block per seed, with every 4 KiB page stamped with
/// its position so that lost, duplicated or reordered pages change the hash.
/// </summary>
internal static class TestData
{
    public const long GiB = 1L << 30;
    public const long MiB = 1L << 20;
    private const int BlockSize = 1 << 20;
    private const int PageSize = 4096;

    /// <summary>Writes <paramref name="length"/> bytes to <paramref name="stream"/> and returns their SHA-256.</summary>
    public static async Task<byte[]> WriteAsync(Stream stream, long length, int seed, CancellationToken cancellationToken, bool close = true)
    {
        byte[] block = new byte[BlockSize];
        new Random(seed).NextBytes(block);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long written = 0;
        try
        {
            while (written < length)
            {
                int count = (int)Math.Min(BlockSize, length - written);
                for (int page = 0; page < count; page += PageSize)
                    BinaryPrimitives.WriteInt64LittleEndian(block.AsSpan(page, 8), written + page);
                hash.AppendData(block, 0, count);
                await stream.WriteAsync(block.AsMemory(0, count), cancellationToken);
                written += count;
            }
            await stream.FlushAsync(cancellationToken);
        }
        finally
        {
            if (close) await stream.DisposeAsync();
        }
        return hash.GetHashAndReset();
    }

    /// <summary>Reads <paramref name="stream"/> to its end; returns the byte count and their SHA-256.</summary>
    public static async Task<(long Length, byte[] Hash)> ReadAsync(Stream stream, CancellationToken cancellationToken, bool close = true)
    {
        byte[] buffer = new byte[BlockSize];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                total += n;
            }
        }
        finally
        {
            if (close) await stream.DisposeAsync();
        }
        return (total, hash.GetHashAndReset());
    }
}
