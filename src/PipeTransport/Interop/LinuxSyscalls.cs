using System.Buffers;
using System.Runtime.CompilerServices;

namespace PipeTransport.Interop;

/// <summary>The real <see cref="ISyscalls"/>.</summary>
internal sealed unsafe class LinuxSyscalls : ISyscalls
{
    /// <summary>Segments gathered per <c>writev</c>; well under <c>IOV_MAX</c> (1024) and enough for megabytes.</summary>
    public const int MaxIov = 64;

    public static readonly LinuxSyscalls Instance = new();

    public bool ShortReadMeansDrained => true;

    private LinuxSyscalls()
    {
    }

    public nint Read(int fd, Memory<byte> buffer)
    {
        fixed (byte* p = buffer.Span)
        {
            return Sys.Result(Libc.Read(fd, p, (nuint)buffer.Length));
        }
    }

    public nint Write(int fd, ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsSingleSegment)
        {
            fixed (byte* p = buffer.FirstSpan)
            {
                return Sys.Result(Libc.Write(fd, p, (nuint)buffer.Length));
            }
        }

        IoVecs iov = default;
        Handles handles = default;
        Libc.IoVec* vec = (Libc.IoVec*)Unsafe.AsPointer(ref iov[0]);
        int count = 0;
        try
        {
            foreach (ReadOnlyMemory<byte> segment in buffer)
            {
                if (segment.IsEmpty)
                {
                    continue;
                }

                // Pool blocks are pinned already: Pin() on them hands out the address without a GCHandle.
                handles[count] = segment.Pin();
                vec[count].Base = handles[count].Pointer;
                vec[count].Length = (nuint)segment.Length;
                if (++count == MaxIov)
                {
                    break;
                }
            }

            return Sys.Result(Libc.Writev(fd, vec, count));
        }
        finally
        {
            for (int i = 0; i < count; i++)
            {
                handles[i].Dispose();
            }
        }
    }

    public int BytesAvailable(int fd)
    {
        int n = 0;
        int r = (int)Sys.Result(Libc.Ioctl(fd, Libc.FIONREAD, &n));
        return r < 0 ? r : n;
    }

    [InlineArray(MaxIov)]
    private struct IoVecs
    {
        private Libc.IoVec _element;
    }

    [InlineArray(MaxIov)]
    private struct Handles
    {
        private MemoryHandle _element;
    }
}
