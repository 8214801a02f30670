// bigint columns (seq, epoch, position, counts) stay far below 2^53: ppos reads them as numbers.
// Set on each pool ppos opens, never as pg's global parser: importing ppos changes nothing in
// a user's own use of pg.
import pg from 'pg';

const bigintAsNumber = (text: string): number => Number.parseInt(text, 10);

/** The `types` option of every pool ppos opens. */
export const JOURNAL_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? bigintAsNumber : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** For ppos's own tools and tests, whose ad-hoc pools read bigints too: the same, process-wide. */
export function readBigintsAsNumbers(): void {
  pg.types.setTypeParser(pg.types.builtins.INT8, bigintAsNumber);
}
