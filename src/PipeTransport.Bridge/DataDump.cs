using System.Buffers;
using System.Globalization;
using System.Text;

namespace PipeTransport.Bridge;

/// <summary>
/// -v: each block one direction moves, also written to stderr the way socat -v writes it: a header
/// "&gt; 2024/05/01 12:00:00.123456  length=4 from=0 to=3" ('&gt;' for ADDRESS1 → ADDRESS2, '&lt;' back,
/// from/to the block's first and last byte offset in its direction), then the bytes as text: '\r' as
/// the two characters \r, newline and tab as they are, other bytes outside printable ASCII as '.'.
/// </summary>
internal sealed class DataDump(TextWriter writer, char arrow)
{
    private long _offset;

    public void Write(in ReadOnlySequence<byte> block)
    {
        long length = block.Length;
        if (length == 0) return;
        var text = new StringBuilder((int)Math.Min(length + 80, int.MaxValue));
        text.Append(arrow).Append(' ')
            .Append(DateTime.Now.ToString("yyyy/MM/dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture))
            .Append(CultureInfo.InvariantCulture, $"  length={length} from={_offset} to={_offset + length - 1}\n");
        foreach (ReadOnlyMemory<byte> segment in block)
        {
            foreach (byte b in segment.Span)
            {
                if (b == (byte)'\r') text.Append("\\r");
                else if (b is (byte)'\n' or (byte)'\t' or >= 0x20 and < 0x7f) text.Append((char)b);
                else text.Append('.');
            }
        }
        _offset += length;
        // One call: the synchronized writer keeps the two directions' blocks apart.
        writer.Write(text.ToString());
    }
}
