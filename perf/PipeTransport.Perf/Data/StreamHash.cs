using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PipeTransport.Perf.Data;

/// <summary>
/// A cheap order-sensitive 64-bit hash over a stream delivered in chunks of any size: four
/// independent multiply-rotate lanes over 32-byte stripes (about 6 bytes per cycle), so hashing
/// adds the same small cost to every variant and never hides a transport's speed.
/// Not cryptographic; it only has to catch lost, duplicated, reordered or corrupted bytes.
/// </summary>
internal sealed class StreamHash
{
    private const ulong Prime1 = 0x9E3779B185EBCA87UL;
    private const ulong Prime2 = 0xC2B2AE3D27D4EB4FUL;
    private const int Stripe = 32;

    private readonly byte[] _carry = new byte[Stripe];
    private int _carryLength;
    private ulong _a = 1, _b = 2, _c = 3, _d = 4;

    public long Length { get; private set; }

    public void Append(in ReadOnlySequence<byte> data)
    {
        foreach (var segment in data)
        {
            Append(segment.Span);
        }
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        Length += data.Length;
        if (_carryLength > 0)
        {
            int take = Math.Min(Stripe - _carryLength, data.Length);
            data[..take].CopyTo(_carry.AsSpan(_carryLength));
            _carryLength += take;
            data = data[take..];
            if (_carryLength < Stripe)
            {
                return;
            }

            Mix(_carry);
            _carryLength = 0;
        }

        int whole = data.Length & ~(Stripe - 1);
        Mix(data[..whole]);
        data[whole..].CopyTo(_carry);
        _carryLength = data.Length - whole;
    }

    /// <summary>
    /// Hashes everything <paramref name="input"/> delivers until EOF, completes it and returns the
    /// timestamp (<see cref="System.Diagnostics.Stopwatch"/>) taken at EOF, before the completion.
    /// </summary>
    public async Task<long> AppendToEndAsync(System.IO.Pipelines.PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken);
            Append(result.Buffer);
            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                long end = System.Diagnostics.Stopwatch.GetTimestamp();
                await input.CompleteAsync();
                return end;
            }
        }
    }

    public ulong Finish()
    {
        ulong h = BitOperations.RotateLeft(_a, 1) + BitOperations.RotateLeft(_b, 7)
                + BitOperations.RotateLeft(_c, 12) + BitOperations.RotateLeft(_d, 18);
        foreach (byte b in _carry.AsSpan(0, _carryLength))
        {
            h = BitOperations.RotateLeft((h ^ b) * Prime1, 23);
        }

        h ^= (ulong)Length;
        h = (h ^ (h >> 33)) * Prime2;
        return h ^ (h >> 29);
    }

    // Fully optimized from the first call: the short-lived writer/reader children would otherwise hash
    // with tier-0 code (helper calls per word) until tiering catches up, and limit the transport.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Mix(ReadOnlySpan<byte> stripes)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(stripes);
        ulong a = _a, b = _b, c = _c, d = _d;
        for (int i = 0; i + 3 < words.Length; i += 4)
        {
            a = BitOperations.RotateLeft((a ^ words[i]) * Prime1, 29);
            b = BitOperations.RotateLeft((b ^ words[i + 1]) * Prime1, 29);
            c = BitOperations.RotateLeft((c ^ words[i + 2]) * Prime1, 29);
            d = BitOperations.RotateLeft((d ^ words[i + 3]) * Prime1, 29);
        }

        _a = a;
        _b = b;
        _c = c;
        _d = d;
    }
}
