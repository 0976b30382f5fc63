using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace PipeTransport.Tests;

/// <summary>
/// Deterministic pseudo-random bytes (xorshift64*) and an order-sensitive 64-bit hash, fast enough
/// to push gigabytes through a test.
/// </summary>
public sealed class TestData
{
    private ulong _state;
    private ulong _hash = 14695981039346656037UL;
    private ulong _pending;
    private int _pendingBytes;

    public TestData(ulong seed) => _state = seed | 1;

    public ulong Hash => Finish();

    public long Length { get; private set; }

    /// <summary>Fills <paramref name="span"/> with the next bytes of the stream.</summary>
    public void Fill(Span<byte> span)
    {
        int i = 0;
        for (; i + 8 <= span.Length; i += 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[i..], Next());
        }

        if (i < span.Length)
        {
            Span<byte> tail = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(tail, Next());
            tail[..(span.Length - i)].CopyTo(span[i..]);
        }
    }

    /// <summary>Adds bytes to the hash (any split of the same stream gives the same hash).</summary>
    public void Add(ReadOnlySpan<byte> data)
    {
        Length += data.Length;
        if (_pendingBytes == 0 && data.Length >= 8)
        {
            int words = data.Length / 8;
            foreach (ulong word in System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data[..(words * 8)]))
            {
                Mix(word);
            }

            data = data[(words * 8)..];
        }

        foreach (byte b in data)
        {
            _pending |= (ulong)b << (8 * _pendingBytes);
            if (++_pendingBytes == 8)
            {
                Mix(_pending);
                _pending = 0;
                _pendingBytes = 0;
            }
        }
    }

    public void Add(in ReadOnlySequence<byte> data)
    {
        foreach (ReadOnlyMemory<byte> segment in data)
        {
            Add(segment.Span);
        }
    }

    /// <summary>Writes <paramref name="total"/> bytes of the stream to <paramref name="writer"/>, hashing them, in chunks of random size.</summary>
    public async Task WriteAsync(PipeWriter writer, long total, int seed, CancellationToken cancellationToken)
    {
        var random = new Random(seed);
        long left = total;
        while (left > 0)
        {
            int size = (int)Math.Min(left, random.Next(1, 256 * 1024));
            Memory<byte> memory = writer.GetMemory(Math.Min(size, 64 * 1024));
            size = Math.Min(size, memory.Length);
            Fill(memory.Span[..size]);
            Add(memory.Span[..size]);
            writer.Advance(size);
            left -= size;
            FlushResult result = await writer.FlushAsync(cancellationToken);
            if (result.IsCompleted)
            {
                throw new InvalidOperationException("The reader went away.");
            }
        }
    }

    /// <summary>Reads <paramref name="reader"/> to its end, hashing everything; pauses now and then so backpressure kicks in.</summary>
    public async Task ReadToEndAsync(PipeReader reader, int seed, CancellationToken cancellationToken)
    {
        var random = new Random(seed);
        while (true)
        {
            ReadResult result = await reader.ReadAsync(cancellationToken);
            Add(result.Buffer);
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return;
            }

            if (random.Next(200) == 0)
            {
                // A consumer that stops reading for a moment: the pipe fills and the transport must pause.
                await Task.Delay(random.Next(1, 5), cancellationToken);
            }
        }
    }

    private ulong Next()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return _state * 2685821657736338717UL;
    }

    private void Mix(ulong word)
    {
        _hash ^= word;
        _hash *= 1099511628211UL;
        _hash ^= _hash >> 29;
    }

    private ulong Finish()
    {
        ulong h = _hash;
        if (_pendingBytes > 0)
        {
            h ^= _pending + (ulong)_pendingBytes;
            h *= 1099511628211UL;
        }

        return h ^ (ulong)Length;
    }
}
