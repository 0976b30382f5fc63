using System.Buffers.Binary;
using System.Collections.Concurrent;

namespace PipeTransport.Perf.Data;

/// <summary>
/// A deterministic pseudo-random byte stream of any length: one random 1 MiB block whose first
/// 8 bytes of every 4 KiB page are overwritten with the page number mixed with the seed, so no two
/// pages of the stream are equal and a lost, repeated or reordered page changes the hash.
/// Generating costs 256 stores per MiB, so a writer is never limited by it.
/// </summary>
internal sealed class DataPattern
{
    public const int BlockSize = 1 << 20;
    private const int PageSize = 4096;
    private static readonly ConcurrentDictionary<(long, int), ulong> ExpectedHashes = new();

    private readonly byte[] _block;
    private readonly ulong _seedMix;
    private long _stampedBlock = -1;

    public DataPattern(int seed)
    {
        _block = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        new Random(seed).NextBytes(_block);
        _seedMix = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL;
    }

    /// <summary>
    /// The stream's bytes from <paramref name="offset"/>, at most <paramref name="maxCount"/> and never
    /// past the end of the 1 MiB block holding <paramref name="offset"/>. Valid until the next call
    /// that crosses into another block.
    /// </summary>
    public ReadOnlyMemory<byte> Slice(long offset, int maxCount)
    {
        long blockIndex = offset / BlockSize;
        int inBlock = (int)(offset % BlockSize);
        if (blockIndex != _stampedBlock)
        {
            Stamp(blockIndex);
        }

        return _block.AsMemory(inBlock, Math.Min(maxCount, BlockSize - inBlock));
    }

    /// <summary>The hash <see cref="StreamHash"/> gives for the first <paramref name="size"/> bytes of the stream.</summary>
    public static ulong ExpectedHash(long size, int seed) => ExpectedHashes.GetOrAdd((size, seed), static key =>
    {
        var pattern = new DataPattern(key.Item2);
        var hash = new StreamHash();
        for (long offset = 0; offset < key.Item1;)
        {
            var slice = pattern.Slice(offset, (int)Math.Min(BlockSize, key.Item1 - offset));
            hash.Append(slice.Span);
            offset += slice.Length;
        }

        return hash.Finish();
    });

    private void Stamp(long blockIndex)
    {
        ulong page = (ulong)blockIndex * (BlockSize / PageSize);
        for (int p = 0; p < BlockSize; p += PageSize, page++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_block.AsSpan(p), page ^ _seedMix);
        }

        _stampedBlock = blockIndex;
    }
}
