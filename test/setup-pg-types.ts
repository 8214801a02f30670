// The tests' own pools (helpers, checks) read bigints as numbers, as the journal's pool does.
import { readBigintsAsNumbers } from '../persistence/pg-types.js';

readBigintsAsNumbers();
