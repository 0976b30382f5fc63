using System.Buffers;
using System.Globalization;
using System.Text;

namespace PipeTransport.Bridge;

/// <summary>
/// -v and -x: each block one direction moves, also written to stderr the way socat writes it: a header
/// "&gt; 2024/05/01 12:00:00.123456  length=4 from=0 to=3" ('&gt;' for ADDRESS1 → ADDRESS2, '&lt;' back,
/// from/to the block's first and last byte offset in its direction), then the bytes. -v: as text, '\r'
/// as the two characters \r, newline and tab as they are, other bytes outside printable ASCII as '.'.
/// -x: in hex on one line. Both: hex then text, 16 bytes a line or up to a newline, and "--" after the block.
/// </summary>
internal sealed class DataDump(TextWriter writer, char arrow, bool text, bool hex)
{
    private const int BytesPerHexLine = 16;
    private const int HexColumnWidth = 2 + (3 * BytesPerHexLine);

    private long _offset;

    public void Write(in ReadOnlySequence<byte> block)
    {
        long length = block.Length;
        if (length == 0) return;
        var dump = new StringBuilder((int)Math.Min(length * (hex ? 4 : 1) + 80, int.MaxValue));
        dump.Append(arrow).Append(' ')
            .Append(DateTime.Now.ToString("yyyy/MM/dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture))
            .Append(CultureInfo.InvariantCulture, $"  length={length} from={_offset} to={_offset + length - 1}\n");
        byte[] bytes = block.ToArray();
        if (text && hex)
        {
            for (int line = 0, count; line < bytes.Length; line += count)
            {
                // A line ends after 16 bytes or after a newline, as in socat.
                ReadOnlySpan<byte> rest = bytes.AsSpan(line, Math.Min(BytesPerHexLine, bytes.Length - line));
                count = rest.IndexOf((byte)'\n') + 1 is > 0 and var newline ? newline : rest.Length;
                int start = dump.Length;
                foreach (byte b in rest[..count])
                    dump.Append(CultureInfo.InvariantCulture, $" {b:x2}");
                dump.Append(' ', HexColumnWidth - (dump.Length - start));
                foreach (byte b in rest[..count])
                    dump.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
                dump.Append('\n');
            }
            dump.Append("--\n");
        }
        else if (hex)
        {
            foreach (byte b in bytes) dump.Append(CultureInfo.InvariantCulture, $" {b:x2}");
            dump.Append('\n');
        }
        else
        {
            foreach (byte b in bytes)
            {
                if (b == (byte)'\r') dump.Append("\\r");
                else if (b is (byte)'\n' or (byte)'\t' or >= 0x20 and < 0x7f) dump.Append((char)b);
                else dump.Append('.');
            }
        }
        _offset += length;
        // One call: the synchronized writer keeps the two directions' blocks apart.
        writer.Write(dump.ToString());
    }
}
